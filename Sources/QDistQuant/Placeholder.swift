// target QDistQuant: see issue notes
