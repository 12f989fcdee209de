// target QDistTrain: see issue notes
