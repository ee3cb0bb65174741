# strainbench: the reproduction DAG. Thin by design: config, schema, rules, the final target.
#   snakemake --cores all                                 # quick scale (config/config.yaml)
#   snakemake --cores all --configfile config/tiny.yaml   # the tests' scale
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.table.output,
        rules.failures.output,
        rules.mae_vs_noise.output,
        rules.strain_maps.output,
