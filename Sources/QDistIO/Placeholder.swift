// target QDistIO: see issue notes
