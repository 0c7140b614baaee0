from taihang.cli.main import main

main()
