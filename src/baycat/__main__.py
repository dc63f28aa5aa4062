from baycat.cli import main

main()
