from galaxy_archive.cli import main

main()
