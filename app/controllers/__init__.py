"""Controllers: the app's logic between the core (``dipnet_core``) and the views."""
