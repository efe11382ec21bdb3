from galaxy_archive.cli.main import main

main()
