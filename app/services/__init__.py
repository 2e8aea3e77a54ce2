"""Services: Qt-aware state shared by controllers (no widgets); views never import them."""
