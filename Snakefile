# strainbench: the reproduction DAG. Thin by design: config, schema, rules, the final target.
#   snakemake --cores all                                 # quick scale (config/config.yaml)
#   snakemake --cores all --configfile config/tiny.yaml   # the tests' scale
#   snakemake --cores all --config user_data=scan.npy reference_region=0:8,0:8   # a user's file
# A run whose fits all answered exits 0; a run in which a fit failed builds every output (the
# table shows the cell as "failed"), prints the failed fits with their errors, and exits 1.
from snakemake.utils import min_version, validate

from strainbench.config import coerce_command_line

min_version("9.0")


configfile: "config/config.yaml"


# --config seeds=[2,3] noise_levels=[0,0.5] arrive as strings
coerce_command_line(config)
validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/user.smk"
include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        # every cell's own files too: one deleted is made again with what depends on it
        cell_files("strain", "h5"),
        (
            rules.compare_user.output
            if USER_DATA
            else [
                rules.run_config.output,
                METRICS,
                BOUNDS,
                rules.table.output,
                rules.failures.output,
                rules.mae_vs_noise.output,
                rules.grain_errors.output,
                rules.strain_maps.output,
            ]
        ),
