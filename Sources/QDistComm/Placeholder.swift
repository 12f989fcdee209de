// target QDistComm: see issue notes
