# The run's last words on the terminal: which fits failed, with their errors and logs, and the
# command that retries them. A failed fit is recorded (the table reads "failed") so that every
# other output is still built; the run then exits with status 1, as Snakemake does for a failed job.
import shlex
import sys

from strainbench.failures import failed_fits, summary


def _report_failures(exit_on_failure):
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
    if failures and exit_on_failure:
        sys.exit(1)


onsuccess:
    _report_failures(exit_on_failure=True)


onerror:
    _report_failures(exit_on_failure=False)
