"""`hf-unlearn` (`main`: the dispatcher and its one error wrapper; one module per subcommand) and what the example
scripts share (`scripts`). Importing this package loads no torch: `hf-unlearn --help` answers at once."""
