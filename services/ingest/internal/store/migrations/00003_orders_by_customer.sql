-- +goose Up
-- A customer's orders, for the customer 360 read (CustomerService).
CREATE INDEX orders_customer ON orders (customer_id);

-- +goose Down
DROP INDEX orders_customer;
