# A user's own 4D-STEM file: imported as a dataset without labels, every method run on it, the
# maps side by side with coverage and agreement (no MAE: no ground truth).
#   snakemake --cores all --config user_data=scan.npy reference_region=0:8,0:8


rule import_user:
    input:
        lambda wildcards: config["user_data"],
    output:
        f"{OUT}/datasets/user.h5",
    log:
        f"{OUT}/logs/import_user.log",
    benchmark:
        f"{OUT}/benchmarks/import_user.tsv"
    container:
        IMAGES["strainbench"]
    resources:
        mem_mb=4000,  # read a block of scan rows at a time
        runtime=120,
    params:
        options=import_options,
    shell:
        "strainbench import {input:q} --out {output:q} {params.options:q} > {log:q} 2>&1"


rule compare_user:
    input:
        dataset=rules.import_user.output,
        strains=expand(f"{OUT}/strain/{{method}}/user.h5", method=METHODS),
    output:
        md=report(
            f"{OUT}/agreement.md",
            category="User data",
            caption="../report/agreement.rst",
        ),
        png=report(
            f"{OUT}/figures/method_maps.png",
            category="User data",
            caption="../report/method_maps.rst",
        ),
        pdf=f"{OUT}/figures/method_maps.pdf",
    log:
        f"{OUT}/logs/compare_user.log",
    benchmark:
        f"{OUT}/benchmarks/compare_user.tsv"
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
        "strainbench compare --dataset {input.dataset:q} --strains {params.pairs:q} --out {output.md:q} "
        "--figure {output.png:q} > {log:q} 2>&1"
