"""biasaudit probes: a pure library of fairness measurements.

Each probe module is imported here explicitly so that it registers itself.
"""

from probes import (
    counterfactual_tabular,  # noqa: E402,F401
    counterfactual_text,  # noqa: E402,F401
    dataset,  # noqa: E402,F401
    demographic,  # noqa: E402,F401  (registers "demographic")
    embedding_association,  # noqa: E402,F401
    lda,  # noqa: E402,F401  (registers "lda-search")
    mlm_stereotype,  # noqa: E402,F401
    outcome_disparity,  # noqa: E402,F401
    pairwise_choice,  # noqa: E402,F401
)
from probes.base import (
    Finding,
    Probe,
    ProbeConfig,
    ProbeEntry,
    ProbeError,
    ProbeInput,
    ProbeResult,
    get_probe,
    list_probes,
    register_probe,
)

__all__ = [
    "Finding",
    "Probe",
    "ProbeConfig",
    "ProbeEntry",
    "ProbeError",
    "ProbeInput",
    "ProbeResult",
    "get_probe",
    "list_probes",
    "register_probe",
]
