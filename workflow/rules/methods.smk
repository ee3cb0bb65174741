# One fit rule per method folder (method.yaml): adding a method needs no edit here. A sample is a
# simulated dataset (s<seed>_w<level>) or an imported user file (user). A method's `gpu: 1` says
# that it uses a GPU when given one; whether one is requested is the profile's choice
# (profiles/slurm-gpu), so no GPU resource is set here.

for _name, _spec in METHODS.items():

    rule:
        name:
            f"fit_{_name}"
        input:
            dataset=f"{OUT}/datasets/{{sample}}.h5",
        output:
            f"{OUT}/strain/{_name}/{{sample}}.h5",
        log:
            f"{OUT}/logs/{_name}/{{sample}}.log",
        benchmark:
            f"{OUT}/benchmarks/{_name}/{{sample}}.tsv"
        container:
            IMAGES[_name]
        threads: int(_spec["resources"].get("threads", 1))
        resources:
            mem_mb=int(_spec["resources"].get("mem_mb", 4000)),
            runtime=int(_spec["resources"].get("runtime_min", 60)),
        params:
            name=_name,
            command=lambda wildcards, cmd=_spec["command"]: cmd,
        shell:
            "TQDM_DISABLE=1 strainbench run-method --method {params.name} --command-template {params.command:q} "
            "--dataset {input.dataset:q} --out {output:q} --threads {threads} > {log:q} 2>&1"
