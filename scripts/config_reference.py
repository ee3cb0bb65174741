"""Write config/README.md, the reference of every config key, from the config schema.

    python scripts/config_reference.py
"""

from pathlib import Path

from strainbench.config import reference_markdown

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "config" / "README.md"
    out.write_text(reference_markdown())
    print(f"wrote {out}")
