"""The subliminal-transfer experiment: steered teacher, students distilled on benign data, transfer ratio."""
