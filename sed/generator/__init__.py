"""The bundled mini-DESED generator's sound synthesis."""
