from leaf_mongo.cli import main

main()
