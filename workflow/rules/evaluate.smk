# Metrics per (method, seed, level), the Cramér-Rao bound per (seed, level), the table beside the
# paper's, the MAE-vs-noise figure and the per-grain errors figure. Each takes seconds: they are
# local rules, run where snakemake runs, never submitted to a cluster.


rule evaluate:
    input:
        dataset=f"{OUT}/datasets/s{{seed}}_w{{level}}.h5",
        strain=f"{OUT}/strain/{{method}}/s{{seed}}_w{{level}}.h5",
    output:
        f"{OUT}/metrics/{{method}}/s{{seed}}_w{{level}}.json",
    log:
        f"{OUT}/logs/evaluate/{{method}}_s{{seed}}_w{{level}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{method}}_s{{seed}}_w{{level}}.tsv"
    localrule: True
    container:
        IMAGES["strainbench"]
    shell:
        "strainbench evaluate --dataset {input.dataset:q} --strain {input.strain:q} --out {output:q} > {log:q} 2>&1"


rule bound:
    input:
        dataset=f"{OUT}/datasets/s{{seed}}_w{{level}}.h5",
        clean=f"{OUT}/cache/clean_s{{seed}}.h5",
    output:
        f"{OUT}/bound/s{{seed}}_w{{level}}.json",
    log:
        f"{OUT}/logs/bound/s{{seed}}_w{{level}}.log",
    benchmark:
        f"{OUT}/benchmarks/bound/s{{seed}}_w{{level}}.tsv"
    localrule: True
    container:
        IMAGES["strainbench"]
    shell:
        "strainbench bound --dataset {input.dataset:q} --clean {input.clean:q} --out {output:q} > {log:q} 2>&1"


BOUNDS = expand(f"{OUT}/bound/s{{seed}}_w{{level}}.json", seed=SEEDS, level=LEVELS)


METRICS = cell_files("metrics", "json")


rule table:
    input:
        metrics=METRICS,
        bounds=BOUNDS,
    output:
        md=f"{OUT}/table.md",
        csv=report(f"{OUT}/table.csv", category="Table", caption="../report/table.rst"),
        tex=f"{OUT}/table.tex",
    log:
        f"{OUT}/logs/table.log",
    benchmark:
        f"{OUT}/benchmarks/table.tsv"
    localrule: True
    container:
        IMAGES["strainbench"]
    params:
        prefix=lambda wildcards, output: os.path.splitext(output.md)[0],
    shell:
        "strainbench table --metrics {input.metrics:q} --bounds {input.bounds:q} --out {params.prefix:q} > {log:q} 2>&1"


rule failures:
    input:
        METRICS,
    output:
        report(
            f"{OUT}/failures.html",
            category="Table",
            caption="../report/failures.rst",
        ),
    log:
        f"{OUT}/logs/failures.log",
    benchmark:
        f"{OUT}/benchmarks/failures.tsv"
    localrule: True
    container:
        IMAGES["strainbench"]
    params:
        logs=cell_files("logs", "log"),
    shell:
        "strainbench failures --metrics {input:q} --logs {params.logs:q} --out {output:q} > {log:q} 2>&1"


rule mae_vs_noise:
    input:
        metrics=METRICS,
        bounds=BOUNDS,
    output:
        png=report(
            f"{OUT}/figures/mae_vs_noise.png",
            category="Figures",
            caption="../report/mae_vs_noise.rst",
        ),
        pdf=f"{OUT}/figures/mae_vs_noise.pdf",
    log:
        f"{OUT}/logs/mae_vs_noise.log",
    benchmark:
        f"{OUT}/benchmarks/mae_vs_noise.tsv"
    localrule: True
    container:
        IMAGES["strainbench"]
    shell:
        "strainbench figures mae-vs-noise --metrics {input.metrics:q} --bounds {input.bounds:q} --out {output.png:q} > {log:q} 2>&1"


rule grain_errors:
    input:
        cell_files("metrics", "json", [f"s{SEEDS[0]}_w{level}" for level in LEVELS]),
    output:
        png=report(
            f"{OUT}/figures/grain_errors.png",
            category="Figures",
            caption="../report/grain_errors.rst",
        ),
        pdf=f"{OUT}/figures/grain_errors.pdf",
    log:
        f"{OUT}/logs/grain_errors.log",
    benchmark:
        f"{OUT}/benchmarks/grain_errors.tsv"
    localrule: True
    container:
        IMAGES["strainbench"]
    shell:
        "strainbench figures grain-errors --metrics {input:q} --out {output.png:q} > {log:q} 2>&1"
