"""deploys"""
