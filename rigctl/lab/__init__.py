"""rigctl/lab"""
