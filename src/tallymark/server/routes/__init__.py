"""Routes per resource; each calls the service layer and shapes the answer."""
