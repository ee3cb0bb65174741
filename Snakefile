# strainbench: the reproduction DAG. Thin by design: config, schema, rules, the final target.
#   snakemake --cores all                                 # quick scale (config/config.yaml)
#   snakemake --cores all --configfile config/tiny.yaml   # the tests' scale
#   snakemake --cores all --config user_data=scan.npy reference_region=0:8,0:8   # a user's file
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
include: "workflow/rules/user.smk"


rule all:
    input:
        (
            rules.compare_user.output
            if USER_DATA
            else [
                rules.table.output,
                rules.failures.output,
                rules.mae_vs_noise.output,
                rules.grain_errors.output,
                rules.strain_maps.output,
            ]
        ),
