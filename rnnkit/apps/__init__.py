"""Applications of the notes, one module each: data -> model -> training -> evaluation."""
