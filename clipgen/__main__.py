from clipgen.cli.app import main

main()
