"""`biggan` commands: model (parameter counts against the paper)."""

from __future__ import annotations

import click

from biggan.cli.common import echo_json, main, resolve_experiment


@main.command("params")
@click.option("--table", "tables", multiple=True, type=click.Choice(["1", "3", "3fit"]),
              default=("1", "3", "3fit"),
              show_default=True, help="Which paper table(s) to compare against.")
@click.option("--preset", "preset", default=None,
              help="Instead, count the G and D of this preset (with --set overrides).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override for --preset.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def params(tables: tuple[str, ...], preset: str | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """G + D parameter counts vs Table 1 (128 px, 1K classes) and Table 3 (256 px, 8.5K classes).

    Totals leave out G's shared class embedding, as the paper's do. "3fit" (rows marked
    Table 3*) repeats Table 3 with embeddings sized for JFT's full 18,291-label vocabulary
    and dim_z 168: our reading of what the paper counted (see biggan/models/params.py).
    """
    from biggan.models.params import TABLE1, TABLE3, TABLE3_FIT, comparison, count_parameters, format_table

    if preset is not None:
        cfg = resolve_experiment(preset, overrides).model
        count = count_parameters(cfg)
        result = {"preset": preset, "G": count.generator, "D": count.discriminator,
                  "shared_embedding": count.shared_embedding, "total_without_shared": count.paper_total}
        if as_json:
            echo_json(result)
        else:
            click.echo(f"{preset}: G {count.generator / 1e6:.3f} M, D {count.discriminator / 1e6:.3f} M, "
                       f"G + D without shared embedding {count.paper_total / 1e6:.3f} M")
        return
    rows = ((TABLE1 if "1" in tables else []) + (TABLE3 if "3" in tables else [])
            + (TABLE3_FIT if "3fit" in tables else []))
    result = comparison(rows)
    if as_json:
        echo_json(result)
    else:
        click.echo(format_table(result))


