"""Non-learned waveform pieces in numpy: preamble, header, pilots, framing, equalisation."""
