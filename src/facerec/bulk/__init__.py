"""Bulk work for the people who run facerec: enroll a folder of persons, export and import a
portable gallery; the ``facerec enroll | recognize | compare | export | import`` commands."""
