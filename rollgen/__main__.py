from rollgen.cli import main

main()
