"""Views: layout and painting only; they emit signals and expose setters for controllers."""
