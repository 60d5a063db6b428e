"""All SQL lives here: tables, engines, the unit of work and one repository per aggregate."""
