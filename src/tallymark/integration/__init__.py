"""Bridges between tallymark's parts and other tools' ways of working.

:mod:`tallymark.integration.jobs` records a finished job in an experiment (``log_training_job``,
the counterpart of Comet's ``log_sagemaker_training_job_v1``) and deploys its model.
"""
