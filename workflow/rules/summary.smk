# The run's last words on the terminal: which fits failed, with their errors and logs, and the
# command that retries them; where the run ran (results/<run>/machine.json); and how its table
# compares with the committed reference run of the same name (results/reference/<run>/). A failed
# fit is recorded (the table reads "failed") so that every other output is still built; the run
# then exits with status 1, as Snakemake does for a failed job.
import shlex
import sys
import time

from strainbench.failures import failed_fits, summary
from strainbench.provenance import REFERENCE_SPREAD, compare_tables, write_machine

START = time.time()


def _compare_with_reference():
    reference = f"results/reference/{RUN}/table.csv"
    if (
        USER_DATA
        or not os.path.exists(reference)
        or not os.path.exists(f"{OUT}/table.csv")
    ):
        return
    for method, d in compare_tables(f"{OUT}/table.csv", reference).items():
        verdict = "within" if d["largest"] <= REFERENCE_SPREAD else "OUTSIDE"
        print(
            f"strainbench: {method} against {reference}: largest MAE difference {d['largest']:.3f}e-3 "
            f"({d['where']}, {d['cells']} cells), {verdict} the {REFERENCE_SPREAD}e-3 spread between machines",
            file=sys.stderr,
        )


def _report(exit_on_failure):
    cells = zip(
        [m for m in METHODS for _ in SAMPLES],
        cell_files("strain", "h5"),
        cell_files("logs", "log"),
    )
    failures = failed_fits(cells)
    command = "snakemake " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(
        summary(
            failures,
            len(METHODS) * len(SAMPLES),
            f"{OUT}/agreement.md" if USER_DATA else f"{OUT}/table.md",
            f"{OUT}/logs" if USER_DATA else f"{OUT}/failures.html",
            command,
        ),
        file=sys.stderr,
    )
    if os.path.isdir(OUT):
        write_machine(
            f"{OUT}/machine.json", time.time() - START, command=command, run=RUN
        )
    _compare_with_reference()
    if failures and exit_on_failure:
        sys.exit(1)


onsuccess:
    _report(exit_on_failure=True)


onerror:
    _report(exit_on_failure=False)
