"""The py4DSTEM correlation (template-matching) strain-mapping baseline."""

PIPELINE_VERSION = "6"
