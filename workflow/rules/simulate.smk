# Datasets: the effective config, the per-seed noise-free cache, one dataset per noise level.
from strainbench.config import simulation_config


rule run_config:
    output:
        report(f"{OUT}/config.yaml", category="Config", caption="../report/config.rst"),
    log:
        f"{OUT}/logs/run_config.log",
    benchmark:
        f"{OUT}/benchmarks/run_config.tsv"
    localrule: True
    params:
        config=dict(config),  # rewritten whenever the config changes (provenance only)
    run:
        with open(output[0], "w") as fh:
            yaml.safe_dump(params.config, fh, sort_keys=False)


rule simulation_config:
    output:
        f"{OUT}/simulation.yaml",
    log:
        f"{OUT}/logs/simulation_config.log",
    benchmark:
        f"{OUT}/benchmarks/simulation_config.tsv"
    localrule: True
    params:
        # what the datasets depend on: a change here simulates them again, a change of methods,
        # seeds, noise levels or figures does not
        simulation=simulation_config(config),
    run:
        with open(output[0], "w") as fh:
            yaml.safe_dump(params.simulation, fh, sort_keys=False)


rule clean:
    input:
        cfg=rules.simulation_config.output,
    output:
        f"{OUT}/cache/clean_s{{seed}}.h5",
    log:
        f"{OUT}/logs/clean_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/clean_s{{seed}}.tsv"
    container:
        IMAGES["strainbench"]
    threads: 8  # scaled down to --cores; the multislice grains run one per core
    resources:
        mem_mb=8000,
        runtime=240,  # minutes: paper scale, 60 multislice grains
    shell:
        "strainbench clean --config {input.cfg:q} --seed {wildcards.seed} --out {output:q} --no-progress > {log:q} 2>&1"


rule simulate:
    input:
        cfg=rules.simulation_config.output,
        clean=rules.clean.output,
    output:
        dataset_output(f"{OUT}/datasets/s{{seed}}_w{{level}}.h5"),
    log:
        f"{OUT}/logs/simulate_s{{seed}}_w{{level}}.log",
    benchmark:
        f"{OUT}/benchmarks/simulate_s{{seed}}_w{{level}}.tsv"
    container:
        IMAGES["strainbench"]
    threads: 2
    resources:
        mem_mb=4000,  # written a block of scan rows at a time
        runtime=60,
    shell:
        "strainbench simulate --config {input.cfg:q} --seed {wildcards.seed} --noise-level {wildcards.level} "
        "--clean {input.clean:q} --out {output:q} --threads {threads} --no-progress > {log:q} 2>&1"
