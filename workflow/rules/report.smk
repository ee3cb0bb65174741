# Fig. 2 (strain maps at one noise level) and the error maps; report() marks what the HTML
# report shows (snakemake --report results/<run>/report.html).


FIG_SEED = SEEDS[0]
FIG_LEVEL = figure_level()


rule strain_maps:
    input:
        noise_free=f"{OUT}/datasets/s{FIG_SEED}_w{LEVELS[0]}.h5",
        noisy=f"{OUT}/datasets/s{FIG_SEED}_w{FIG_LEVEL}.h5",
        strains=expand(
            f"{OUT}/strain/{{method}}/s{FIG_SEED}_w{FIG_LEVEL}.h5", method=METHODS
        ),
    output:
        png=report(
            f"{OUT}/figures/strain_maps.png",
            category="Figures",
            caption="../report/strain_maps.rst",
        ),
        pdf=f"{OUT}/figures/strain_maps.pdf",
        errors=report(
            f"{OUT}/figures/error_maps.png",
            category="Figures",
            caption="../report/error_maps.rst",
        ),
        errors_pdf=f"{OUT}/figures/error_maps.pdf",
    log:
        f"{OUT}/logs/strain_maps.log",
    benchmark:
        f"{OUT}/benchmarks/strain_maps.tsv"
    container:
        IMAGES["strainbench"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        pairs=lambda wildcards, input: [
            f"{m}={s}" for m, s in zip(METHODS, input.strains)
        ],
    shell:
        "strainbench figures strain-maps --datasets {input.noise_free:q} {input.noisy:q} --strains {params.pairs:q} "
        "--out {output.png:q} --errors-out {output.errors:q} > {log:q} 2>&1"
