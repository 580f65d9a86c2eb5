"""Reading articles: parsing files, dates, sentences and chunks."""
