from riskpool.cli import main

main()
