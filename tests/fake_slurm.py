"""A recording fake SLURM for the tests: sbatch, srun, sacct, squeue, scancel, sinfo, scontrol,
sacctmgr and sshare, each a stand-in on PATH that runs this file with its own name.

Every call is appended to ``$FAKE_SLURM_DIR/calls.jsonl`` (the command, its arguments and, for
``srun``, whether the step has a GPU). The commands answer in the formats that
snakemake-executor-plugin-slurm parses:

* ``sbatch --parsable ... --wrap="..."`` checks the partition (``$FAKE_SLURM_PARTITIONS``, e.g.
  ``cpu,gpu:gpu``: the partitions, those after a colon have GPUs), the account
  (``$FAKE_SLURM_ACCOUNTS``) and that a GPU is asked for one way only and only on a GPU partition,
  refusing as sbatch does (exit 1, ``sbatch: error: ...``); then prints the job id and runs the job
  script in the background, its output in ``--output`` (``%j`` the job id), with ``SLURM_JOB_ID``
  set and, for a GPU job, ``CUDA_VISIBLE_DEVICES``, as SLURM's GPU plugin sets it;
* ``sacct ... --name RUN`` and ``squeue ... --name RUN`` print ``<jobid>|<STATE>`` per job of that
  name (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED);
* ``srun [options] command ...`` runs the command, with ``CUDA_VISIBLE_DEVICES`` only when the step
  asks for a GPU (``--gpus``);
* ``scancel ID...`` cancels; ``sinfo -o %P`` lists the partitions, the first as the default;
  ``scontrol show config`` gives ``MinJobAge``; ``sacctmgr``/``sshare`` list the accounts.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_DIR", "."))
SEPARATE_VALUE = {"--job-name", "-J", "--output", "-o", "--comment", "-A", "--account", "-p", "--partition", "-t", "--time", "--mem", "--mem-per-cpu", "-C", "--constraint", "-D", "--chdir", "--cluster", "-c", "-n"}


def record(command: str, argv: list[str], **extra) -> None:
    with open(STATE / "calls.jsonl", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps({"command": command, "argv": argv, **extra}) + "\n")


def options(argv: list[str]) -> dict[str, str]:
    """sbatch's options as ``{name: value}`` (``--a=b``, ``--a b``, ``-A b`` and flags)."""
    out, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            out[key] = value
        elif arg in SEPARATE_VALUE:
            out[arg] = argv[i + 1]
            i += 1
        elif arg.startswith("-"):
            out[arg] = ""
        else:
            out.setdefault("script", arg)
        i += 1
    return out


def partitions() -> dict[str, bool]:
    """``{name: has_gpus}`` from ``$FAKE_SLURM_PARTITIONS``."""
    out = {}
    for item in os.environ.get("FAKE_SLURM_PARTITIONS", "cpu").split(","):
        name, _, kind = item.partition(":")
        out[name] = kind == "gpu"
    return out


def next_job_id() -> str:
    with open(STATE / "next_id", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        job_id = int(fh.read() or 1000) + 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(job_id))
    return str(job_id)


def set_state(job_id: str, **fields) -> None:
    path = STATE / "jobs" / f"{job_id}.json"
    path.parent.mkdir(exist_ok=True)
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current))
    tmp.replace(path)


def jobs(state: Path = STATE) -> dict[str, dict]:
    """Every job so far: ``{job id: {name, state, gpu, comment, ...}}``."""
    folder = state / "jobs"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.exists() else {}


def refuse(message: str) -> int:
    print(f"sbatch: error: {message}", file=sys.stderr)
    return 1


def sbatch(argv: list[str]) -> int:
    opts = options(argv)
    record("sbatch", argv, options=opts)
    known = partitions()
    partition = opts.get("-p", opts.get("--partition"))
    if partition is not None and partition not in known:
        return refuse("invalid partition specified: " + partition)
    accounts = [a for a in os.environ.get("FAKE_SLURM_ACCOUNTS", "").split(",") if a]
    account = opts.get("-A", opts.get("--account"))
    if account is not None and account not in accounts:
        return refuse(f"invalid account or account/partition combination specified: {account}")
    gpu_ways = [k for k in ("--gpus", "--gres", "--gpus-per-node", "--gpus-per-task") if k in opts and (k != "--gres" or "gpu" in opts[k])]
    if len(gpu_ways) > 1:
        return refuse(f"GPUs requested more than one way: {', '.join(gpu_ways)}")
    if gpu_ways and not known.get(partition or next(iter(known)), False):
        return refuse("Batch job submission failed: Requested node configuration is not available")
    if "--wrap" in opts:
        script = opts["--wrap"]
    elif opts.get("script") == "/dev/stdin":
        script = sys.stdin.read()
    else:
        return refuse("no script given")
    job_id = next_job_id()
    set_state(job_id, name=opts.get("--job-name", opts.get("-J", "")), state="PENDING", gpu=bool(gpu_ways), comment=opts.get("--comment", ""))
    log = Path(opts.get("--output", opts.get("-o", "slurm-%j.out")).replace("%j", job_id))
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SLURM_JOB_ID": job_id, "SLURM_JOBID": job_id, "SLURM_CPUS_PER_TASK": opts.get("--cpus-per-task", "1")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if gpu_ways:
        env["CUDA_VISIBLE_DEVICES"] = "0"
    with open(log, "w") as out:
        subprocess.Popen(
            [sys.executable, __file__, "_run", job_id, script],
            cwd=opts.get("-D", opts.get("--chdir", os.getcwd())),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    print(job_id)
    return 0


def run_job(job_id: str, script: str) -> int:
    if jobs().get(job_id, {}).get("state") == "CANCELLED":
        return 0
    set_state(job_id, state="RUNNING")
    status = subprocess.run(["/bin/sh", "-c", script]).returncode
    if jobs()[job_id].get("state") != "CANCELLED":
        set_state(job_id, state="COMPLETED" if status == 0 else "FAILED", exit_code=status)
    return 0


def srun(argv: list[str]) -> int:
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1 + (argv[i] in SEPARATE_VALUE)
    opts = options(argv[:i])
    gpu = any(k in opts for k in ("--gpus", "--gres", "--gpus-per-task"))
    record("srun", argv[:i], gpu=gpu, job=os.environ.get("SLURM_JOB_ID"))
    env = dict(os.environ)
    if not gpu:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    os.execvpe(argv[i], argv[i:], env)
    return 1


def status(argv: list[str]) -> int:
    record(Path(sys.argv[1]).name, argv)
    if "--name" not in argv:
        return 0  # e.g. sacct's guess of an account from earlier jobs: none
    name = argv[argv.index("--name") + 1]
    for job_id, job in jobs().items():
        if job.get("name") == name:
            print(f"{job_id}|{job['state']}")
    return 0


def scancel(argv: list[str]) -> int:
    record("scancel", argv)
    for job_id in argv:
        if job_id in jobs():
            set_state(job_id, state="CANCELLED")
    return 0


def main() -> int:
    command, argv = sys.argv[1], sys.argv[2:]
    if command == "_run":
        return run_job(*argv)
    if command == "sbatch":
        return sbatch(argv)
    if command == "srun":
        return srun(argv)
    if command in ("sacct", "squeue"):
        return status(argv)
    if command == "scancel":
        return scancel(argv)
    record(command, argv)
    if command == "sinfo":
        names = list(partitions())
        print("PARTITION\n" + "\n".join(f"{n}*" if i == 0 else n for i, n in enumerate(names)))
    elif command == "scontrol" and argv[:2] == ["show", "config"]:
        print("MinJobAge               = 300 sec")
    elif command in ("sacctmgr", "sshare"):
        print("\n".join(os.environ.get("FAKE_SLURM_ACCOUNTS", "").split(",")))
    return 0


def install(bin_dir: Path, state: Path) -> None:
    """Write the stand-ins into ``bin_dir``; their state and records go to ``state``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    for name in ("sbatch", "srun", "sacct", "squeue", "scancel", "sinfo", "scontrol", "sacctmgr", "sshare"):
        exe = bin_dir / name
        exe.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))} {name} \"$@\"\n")
        exe.chmod(0o755)


def calls(state: Path) -> list[dict]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


if __name__ == "__main__":
    sys.exit(main())
