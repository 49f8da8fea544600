from extrema.cli import main

main()
