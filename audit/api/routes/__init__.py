"""One router per resource: health, datasets, audits, reviews, schedules."""
