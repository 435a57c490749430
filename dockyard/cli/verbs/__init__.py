"""One module per verb (or per family of verbs); ``dockyard.cli.commands`` says which serves which."""
