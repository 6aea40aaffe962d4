"""Entity extractors: dates and times, plates, phones, mileage, VIN, service types, places."""
