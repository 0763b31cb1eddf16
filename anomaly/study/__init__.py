"""The anomaly-detection reference study (``trigger-ad study``): config, resumable stages,
numbers, report and plots. See docs/reference_study.md."""
