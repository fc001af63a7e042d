"""Statistics per patient across modalities: relapse monitoring and response prediction.

Generic: functions take tables of per-timepoint signals or per-sample features with
``subject_id`` (from any modality, NaN where missing) and never name a modality; they do
no I/O and never import Prefect.

* :func:`monitor_relapse` - a one-sided CUSUM per patient on a serial signal, with the
  patient's baseline as reference and the threshold calibrated to a false-alarm rate;
* :func:`predict_response` - nested, subject-grouped cross-validation of calibrated
  classifiers, summarised in a :class:`ModelCard`.
"""

from resistomics.patients._monitor import (
    RelapseMonitor,
    cusum_path,
    cusum_threshold,
    monitor_relapse,
    moving_range_scale,
)

__all__ = [
    "RelapseMonitor",
    "cusum_path",
    "cusum_threshold",
    "monitor_relapse",
    "moving_range_scale",
]
