# Datasets: the effective config, the per-seed noise-free cache, one dataset per noise level.


rule run_config:
    output:
        report(f"{OUT}/config.yaml", category="Config", caption="../report/config.rst"),
    log:
        f"{OUT}/logs/run_config.log",
    benchmark:
        f"{OUT}/benchmarks/run_config.tsv"
    run:
        with open(output[0], "w") as fh:
            yaml.safe_dump(dict(config), fh, sort_keys=False)


rule clean:
    input:
        cfg=rules.run_config.output,
    output:
        f"{OUT}/cache/clean_s{{seed}}.h5",
    log:
        f"{OUT}/logs/clean_s{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/clean_s{{seed}}.tsv"
    container:
        IMAGES["strainbench"]
    threads: 8  # scaled down to --cores; the multislice grains run one per core
    shell:
        "strainbench clean --config {input.cfg} --seed {wildcards.seed} --out {output} --no-progress > {log} 2>&1"


rule simulate:
    input:
        cfg=rules.run_config.output,
        clean=rules.clean.output,
    output:
        noisy_output(f"{OUT}/datasets/s{{seed}}_w{{level}}.h5"),
    log:
        f"{OUT}/logs/simulate_s{{seed}}_w{{level}}.log",
    benchmark:
        f"{OUT}/benchmarks/simulate_s{{seed}}_w{{level}}.tsv"
    container:
        IMAGES["strainbench"]
    threads: 2
    shell:
        "strainbench simulate --config {input.cfg} --seed {wildcards.seed} --noise-level {wildcards.level} "
        "--clean {input.clean} --out {output} --threads {threads} --no-progress > {log} 2>&1"
