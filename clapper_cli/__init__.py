"""clapper_cli: the `clapper` command, a thin typer layer over clapper_core."""
