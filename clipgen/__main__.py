from clipgen.cli import main

main()
