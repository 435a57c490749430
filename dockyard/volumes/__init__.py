"""Named volumes: directories under ``<root>/volumes`` that outlive the containers using them."""
