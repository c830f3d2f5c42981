"""Fantasy-sports scoreboard: a Django demo of performance lessons."""
