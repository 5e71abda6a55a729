"""rigctl/facts"""
