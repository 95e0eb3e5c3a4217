from clipgen.cli.app import entry

entry()
