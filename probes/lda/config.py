"""Configuration of the less-discriminatory-alternative search (spec ``probes[i]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from probes.base import ProbeConfig

MSG_TRAIN_OR_SPLIT = (
    "probes[].train: set train (a training file), train_id (a training file uploaded to "
    "the service) or holdout_size (split the audited rows into training and holdout "
    "rows): exactly one of them"
)


class LdaSearchConfig(ProbeConfig):
    """Configuration of the less-discriminatory-alternative search (spec ``probes[i]``)."""

    kind: Literal["lda-search"] = "lda-search"
    attribute: str = Field(
        description="protected column (or race_proxy, with dataset.proxy) whose lowest impact "
        "ratio is searched"
    )
    train: str | None = Field(
        default=None,
        description="training data (CSV or Parquet) with the model's features, the label and "
        "the attribute; candidates are fitted on it, never on the audited holdout "
        "(or set holdout_size instead)",
    )
    train_id: str | None = Field(
        default=None,
        max_length=100,
        description="service audits: the id of a training file uploaded with POST "
        "/v1/datasets (biasaudit submit uploads train and sets this), instead of train",
    )
    holdout_size: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="instead of train: split the audited rows (seeded, stratified by the "
        "label and the protected columns); this share is the holdout, the rest trains",
    )
    metric: Literal["auc", "accuracy"] = Field(
        default="auc", description="business-necessity measure judged on the holdout"
    )
    max_performance_loss: float = Field(
        default=0.01, ge=0, le=1, description="alternatives may lose at most this much"
    )
    target_impact_ratio: float = Field(
        default=0.8, gt=0, le=1, description="lowest impact ratio under which an LDA is needed"
    )
    time_budget_s: float = Field(default=600, gt=0, description="stop fitting after this long")
    n_jobs: int | None = Field(default=None, description="parallel fits (default: every CPU)")
    seeds: int = Field(default=3, ge=0, le=50, description="refits with other seeds")
    hyperparameters: bool = Field(default=True, description="neighbour hyperparameter values")
    drop_features: bool = Field(default=True, description="each feature neutralized in turn")
    reductions: bool = Field(
        default=True, description="fairlearn GridSearch / ExponentiatedGradient"
    )
    bounds: list[float] = Field(
        default=[0.02, 0.05, 0.1], description="ExponentiatedGradient difference bounds"
    )
    grid_size: int = Field(default=5, ge=2, le=50, description="GridSearch grid size")
    threshold_steps: int = Field(default=6, ge=0, le=50, description="thresholds each side of 0.5")
    threshold_step: float = Field(default=0.025, gt=0, lt=0.5)
    bootstrap: int = Field(default=200, ge=20, le=5000, description="bootstrap replicates (CIs)")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    seed: int | None = Field(default=None, description="search seed (default: the audit seed)")

    @model_validator(mode="after")
    def _train_or_split(self) -> LdaSearchConfig:
        given = [v for v in (self.train, self.train_id, self.holdout_size) if v is not None]
        if len(given) != 1:
            raise ValueError(MSG_TRAIN_OR_SPLIT)
        return self
