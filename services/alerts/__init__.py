"""The alert service: rules over stored events, alert lifecycle, durable delivery."""
